"""The Slack app: a Slack-free core with thin adapters for Bolt and for the console."""
