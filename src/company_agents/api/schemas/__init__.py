"""The public models of ``/v1``, one module per resource; the CLI's ``--json`` prints the same ones."""
