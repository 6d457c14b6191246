"""Building and shipping the platform (the image, the air-gapped bundle). Imports nothing from the apps:
it builds the platform; it does not run it."""
