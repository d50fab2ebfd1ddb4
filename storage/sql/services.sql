SELECT DISTINCT ServiceName FROM tracehouse_operations ORDER BY ServiceName
