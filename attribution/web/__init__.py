"""Attribution's pages in the merchant portal: attributed orders and the evidence of each."""
