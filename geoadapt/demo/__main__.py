"""``python -m geoadapt.demo``."""

from geoadapt.demo import main

main()
