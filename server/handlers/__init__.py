"""Thin gRPC servicers: transport to domain services, nothing more."""
