"""What runs the product for people rather than being the product: the local Airflow stack, the
end-to-end demo, the loop simulator, a small Airflow REST client and plots.
"""
