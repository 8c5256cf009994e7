"""Run records: run ids and folders (folder.py), reading records back (records.py)."""
