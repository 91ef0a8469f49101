"""The aisec gateway: a hardened model server (``aisec serve``).

Install with ``pip install "aisec[gateway]"``. The app is made by
:func:`aisec.gateway.app.create_app`; importing this package loads nothing heavy.
"""
