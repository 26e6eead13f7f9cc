"""`python -m featureloop.cli`: the same command as `featureloop`."""

from featureloop.cli import main

main()
