"""hypothesis settings profiles (ci, dev, thorough), registered before pytest loads one."""
