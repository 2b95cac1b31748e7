"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), served by the router."""

from workbench.serving.oip_grpc.service import handler, start, status_code

__all__ = ["handler", "start", "status_code"]
