"""Model versions and who serves: skops artifacts checked by sha256, the champion alias with its
audited history, the per-model lock that serialises changes, and automatic rollback.
"""
