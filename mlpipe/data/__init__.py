"""Reading and writing local paths and s3:// URIs alike (atomic local writes), for mlpipe's own tools."""
