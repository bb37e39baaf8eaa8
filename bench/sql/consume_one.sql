SELECT tenant.consume('api_calls');
