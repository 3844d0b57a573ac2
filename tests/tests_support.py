"""Constants shared by tests (importable because tests/ is on sys.path)."""

TEST_HASH_KEY = bytes(range(32))
TEST_ENCRYPTION_KEY = bytes(range(32, 64))
TEST_LOG_KEY = bytes(range(64, 96))
