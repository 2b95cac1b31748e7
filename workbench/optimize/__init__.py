"""Optimised variants of registered models: made, measured beside their parent, gated, registered.

Nothing here is imported by the control plane at start-up except the pure parts (methods, gate, table);
the torch and onnx work runs in ``workbench.optimize.worker``, a child process.
"""
