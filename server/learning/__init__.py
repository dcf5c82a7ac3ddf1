"""server.learning: what learners study on their own: materials, the forum, self-study progress (the LMS),
and the archive of recorded lectures.

Uses server.people (enrolment), server.schedule (programs' meetings) and server.live (who may see a
recording) and infrastructure.
"""
