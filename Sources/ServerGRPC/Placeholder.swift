enum ServerGRPCPlaceholder {}
