"""The Chat tab and what belongs to a conversation: view, memory, branches, transcript, feedback, presenter."""
