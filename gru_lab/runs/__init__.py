"""Run records: atomic writes (files.py), run ids and folders (folder.py), reading records back (records.py)."""
