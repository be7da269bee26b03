"""Generated from proto/tune.proto by `make proto`; do not edit."""
