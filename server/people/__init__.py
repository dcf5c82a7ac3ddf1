"""server.people: accounts, organisational units (provinces, districts, classrooms) and enrolment."""
