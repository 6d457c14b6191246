"""Building and shipping the platform: the image (deploy/image), the Helm chart (deploy/helm) and the
air-gapped bundle (deploy/bundle.py). Imports nothing from the apps: it builds the platform, never runs it."""
