"""Sinks: the Redis state writer, the signed-webhook notifier and the consumer loop.

- ``sinks.redis_state``: key layout, idempotent writer, readers, operator flags;
- ``sinks.webhook``: Standard Webhooks signing/verification, ``WebhookNotifier``;
- ``sinks.alert_consumer``: commit-after-effect consumer loop with dead letters;
- ``sinks.runner``: ``start_sinks``/``run_sinks`` from ``Settings``.
"""
