"""``python -m ec2kit.sandbox.daemon --dir D``: run the sandbox daemon (see ``main``)."""

import sys

from .main import main

sys.exit(main())
