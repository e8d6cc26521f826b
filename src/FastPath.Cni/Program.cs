using FastPath.Cni;

// A CNI plugin is run by the container runtime with the command in the environment and the network configuration
// on stdin; the result or error JSON goes to stdout (CNI spec 1.0, "Execution Protocol").
return CniPlugin.Run(Environment.GetEnvironmentVariables(), Console.In.ReadToEnd(), Console.Out);
