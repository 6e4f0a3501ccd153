"""The test bed never touches the network: tiny models are built from config classes."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
