"""HTTP plumbing: problem+json rendering, request context, body limits, operational routes."""
