"""The analyst console: the queue of warnings, one warning with its money drawn as a graph, triage labels, and
rule precision from those labels. Above the sinks and offline layers (it reads the warning store and draws
evidence with stream.offline.evidence_view), below the cli (`fundflow console`)."""
