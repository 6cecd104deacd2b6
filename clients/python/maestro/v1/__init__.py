"""Generated from protos/maestro/v1 by scripts/gen_protos.py; do not edit."""
