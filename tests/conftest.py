"""Session-wide test settings."""

from __future__ import annotations

import os
import tempfile

# Decoded data sets go to a cache private to this test session, not the user's home.
os.environ.setdefault("SUPERCONVERGE_CACHE", tempfile.mkdtemp(prefix="superconverge-test-cache-"))
