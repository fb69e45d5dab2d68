"""pytest wiring only: options, hooks and fixture registration. The procedure itself knows nothing
of pytest."""
