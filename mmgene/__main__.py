"""``python -m mmgene`` runs the command line."""

from mmgene.cli import main

main()
