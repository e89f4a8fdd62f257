"""Foundations every stage stands on: configuration, which PostgreSQL and how to reach it, schema
migrations, named SQL, local paths, errors, the feedback/prediction store and the notification outbox.

Imports no other stage of the loop.
"""
