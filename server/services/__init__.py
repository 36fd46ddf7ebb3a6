"""Domain logic of graphgate: passwords, CAPTCHA, brute-force protection and friends."""
