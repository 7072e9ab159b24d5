-- Native search (search-and-bench.md Part A): what tracking.sql does not
-- index yet. The sightline_* functions are registered by this package
-- (tracking_search.go); every connection that writes this file needs them.

-- Client IP as a sortable key, so that a CIDR block is a range.
CREATE INDEX messages_ip_key ON messages (sightline_ip_key(sender_ip));
-- Reversed domains, so that ".example.com" (its subdomains) is a prefix range.
CREATE INDEX messages_sender_domain_rev ON messages (sightline_reverse(sender_domain_lc));
CREATE INDEX recipients_domain_rev ON recipients (sightline_reverse(domain));
-- Folded URLs for exact url: terms.
CREATE INDEX urls_url_folded ON urls (sightline_fold(url));

-- Folded text of the fields messages_fts lacks, rowid = mid: the From
-- header (address and display name), the body snippet, the client's names.
CREATE VIRTUAL TABLE search_fts USING fts5 (
	header_from, body, host,
	tokenize = 'trigram case_sensitive 1', content = '', contentless_delete = 1
);
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
	INSERT INTO search_fts (rowid, header_from, body, host) VALUES (new.mid,
		sightline_fold(new.header_from || char(10) || new.friendly_from), sightline_fold(new.body_snippet),
		sightline_fold(new.reverse_dns || char(10) || new.helo));
END;
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
	DELETE FROM search_fts WHERE rowid = old.mid;
END;
INSERT INTO search_fts (rowid, header_from, body, host)
	SELECT mid, sightline_fold(header_from || char(10) || friendly_from), sightline_fold(body_snippet),
		sightline_fold(reverse_dns || char(10) || helo) FROM messages;

-- Folded URLs for url: substrings, rowid = mid * 65536 + idx. The MIME
-- parser keeps far fewer URLs per message (mailparse.DefaultMaxURLs).
CREATE VIRTUAL TABLE urls_fts USING fts5 (
	url, tokenize = 'trigram case_sensitive 1', content = '', contentless_delete = 1
);
CREATE TRIGGER urls_search_insert AFTER INSERT ON urls WHEN new.idx < 65536 BEGIN
	INSERT INTO urls_fts (rowid, url) VALUES (new.mid * 65536 + new.idx, sightline_fold(new.url));
END;
CREATE TRIGGER urls_search_delete AFTER DELETE ON urls WHEN old.idx < 65536 BEGIN
	DELETE FROM urls_fts WHERE rowid = old.mid * 65536 + old.idx;
END;
INSERT INTO urls_fts (rowid, url) SELECT mid * 65536 + idx, sightline_fold(url) FROM urls WHERE idx < 65536;
