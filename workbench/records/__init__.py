"""The records the API answers with, free of storage code: the client imports these, never the store.

The store builds them from rows; ``workbench.store`` re-exports them for server-side code.
"""
