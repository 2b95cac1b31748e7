"""The data plane: model replicas, dynamic batching, the router."""
