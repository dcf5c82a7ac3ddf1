"""server.learning: what learners study on their own: materials, the forum, self-study progress (the LMS),
the archive of recorded lectures, and SCORM packages played from a separate content origin (scorm, scormrt,
content; docs/learning.md).

Uses server.people (enrolment), server.schedule (programs' meetings) and server.live (who may see a
recording) and infrastructure.
"""
