"""The Bolt adapter: Slack's Web API behind the Chat interface, and the app's runners."""
