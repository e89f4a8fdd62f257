"""The only modules of the package that import Airflow. Everything else is plain Python."""
