"""Where tests keep what a person should look at (screenshots): $CRYOBOX_TEST_ARTIFACTS or test-artifacts/."""

import os
from pathlib import Path

ARTIFACTS = Path(os.environ.get("CRYOBOX_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
