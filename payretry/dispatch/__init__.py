"""Adapters that hand due retries to a message queue (SQS) instead of attempting them inline."""
