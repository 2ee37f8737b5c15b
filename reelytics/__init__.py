"""reelytics"""
