using System.Reflection;
using System.Runtime.CompilerServices;
using FastPath.DataPlane.Pipeline;
using FastPath.DataPlane.Telemetry;

namespace FastPath.Live;

/// <summary>
/// The code a takeover runs in its forwarding gap, compiled ahead. Measured in the gap's log line (JitInfo): without
/// this, JIT compilation was 45–80 ms of a 120–190 ms gap — the TAP attach, the state files, the workers, the
/// listeners and flow logs, each method compiled on its first call, after the old process had stopped forwarding, and
/// then the whole packet path on the new workers' first batch. `run --takeover` compiles it before it asks for the
/// hand-over; every `run --state-dir` compiles it in the background once it forwards, so its own side of a later
/// hand-over (stopping, saving, closing the TAPs) is ready too. .NET has no cheaper way from a plain build: ReadyToRun
/// images come only from `dotnet publish` (deploy/Dockerfile could add them; the gap would then start from precompiled code).
/// </summary>
public static class GapCode
{
    /// <summary>fastpath's namespaces whose code runs in the gap (the rest of the data plane's assembly runs there too).</summary>
    private static readonly string[] Namespaces = ["FastPath.Live", "FastPath.FlowLog", "FastPath.Health", "FastPath.Metrics"];

    /// <summary>
    /// Compiles every non-generic method of the data plane and of <see cref="Namespaces"/>, and the packet path's
    /// methods generic over the observer for the observers `run` uses (none, the flow log); returns how many.
    /// </summary>
    public static int Compile()
    {
        int methods = 0;
        Type[] observers = [typeof(NoObserver), typeof(FlowLogObserver)];
        foreach (var assembly in new[] { typeof(Engine).Assembly, typeof(GapCode).Assembly })
            foreach (var type in assembly.GetTypes())
            {
                if (type.ContainsGenericParameters) continue;
                if (assembly == typeof(GapCode).Assembly && !Namespaces.Any(n => type.Namespace?.StartsWith(n, StringComparison.Ordinal) == true)) continue;
                const BindingFlags all = BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
                foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
                {
                    if (method.IsAbstract || method is ConstructorInfo { IsStatic: true } || method.GetMethodBody() is null) continue;
                    bool byObserver = method.IsGenericMethodDefinition && method.GetGenericArguments() is [var t]
                        && t.GetGenericParameterConstraints().Contains(typeof(IPacketObserver));
                    if (method.ContainsGenericParameters && !byObserver) continue;
                    try
                    {
                        if (!byObserver) RuntimeHelpers.PrepareMethod(method.MethodHandle);
                        else
                            foreach (var observer in observers) RuntimeHelpers.PrepareMethod(method.MethodHandle, [observer.TypeHandle]);
                        methods++;
                    }
                    catch (Exception e) when (e is ArgumentException or TypeLoadException or InvalidProgramException or NotSupportedException)
                    {
                        // compiled on first call instead, as without this
                    }
                }
            }
        return methods;
    }
}
