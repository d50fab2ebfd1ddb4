-- Until when the dependency links are complete (epoch s): the start of the newest linking run that
-- finished, when spans were inserted after it (their links are not written yet); 0 when every insert
-- since the range's start is linked. An edge's rate ends there (query/views.py), or it reads low for
-- as long as the linker lags (its interval, a minute by default) — a new service's edges at half rate.
-- Both times from the same clock where the store is embedded; a server's InsertedAt is its own.
WITH
    (SELECT max(Version) FROM tracehouse_links_1m
     WHERE ChildKind = '__done__' AND Minute >= toStartOfMinute(fromUnixTimestamp64Nano({start:Int64}))) / 1e9
        AS linked,
    (SELECT toUnixTimestamp64Milli(max(InsertedAt)) FROM tracehouse_link_dirty
     WHERE InsertedAt >= fromUnixTimestamp64Nano({start:Int64})) / 1e3
        AS inserted
SELECT if(inserted > linked, linked, 0)
