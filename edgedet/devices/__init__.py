"""Device profiles, latency models (measured LUT or analytic) and on-device timing."""
