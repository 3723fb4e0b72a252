"""The API's request and response models, separate from the database's."""
