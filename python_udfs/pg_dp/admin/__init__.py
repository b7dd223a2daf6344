"""What a DBA calls: protecting tables (protect), the health report (doctor) and dummy data."""
