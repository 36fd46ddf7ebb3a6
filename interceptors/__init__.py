"""graphgate interceptors: one module per concern of the gRPC security chain."""
