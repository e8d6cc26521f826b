// Placeholder entry point so the solution (and the test project that references this one) builds before the
// command line lands; the real `fastpath replay|trace|run|bench|check` replaces this file.
Console.Error.WriteLine("fastpath: no commands yet");
return 2;
