"""Studio pages of billing: cost_profiles (filled by its part of issue 16)."""
