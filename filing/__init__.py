"""Filing documents carried by messages into patients' dossiers (issue #4)."""
