"""Release acceptance for self-hosted AI agent gateways."""

__version__ = "0.1.0"
