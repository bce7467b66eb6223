package server

// monitorRoutes are the fairness, pricing and filter-bubble report routes.
func (s *Server) monitorRoutes() []route { return nil }
