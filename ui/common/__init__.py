"""What every tab shares: pickers, parameter widgets, events, streaming, jobs, layout."""
